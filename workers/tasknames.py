"""Every Celery task name of the asynchronous plane, in one place: the conductor's and the agents'.

Tasks are sent by name (``send_task``), so the sender never imports the receiver: the agent imports
no model, and the conductor never imports agent code. Each name is defined once here and used by
both the ``@shared_task`` that implements it and every sender.
"""

# Conductor (queue ``conductor``): generic steps of every async resource.
RUN_TRANSITION = "workers.tasks.run_transition"
TRANSITION_DONE = "workers.tasks.transition_done"
HOST_TASK_FAILED = "workers.tasks.host_task_failed"
SWEEP_OPERATIONS = "workers.tasks.sweep_operations"
PING_HOST = "workers.tasks.ping_host"
OPERATION_PROGRESS = "workers.tasks.operation_progress"
HOST_HEARTBEAT = "workers.tasks.host_heartbeat"
HOST_HEARTBEATS = "workers.tasks.host_heartbeats"  # many hosts' heartbeats in one message (--simulate)

# Conductor: compute.
BUILD_INSTANCE = "compute.tasks.build_instance"
RESCHEDULE_FROM_DOWN_HOSTS = "compute.tasks.reschedule_from_down_hosts"
POWER_SYNC = "compute.tasks.power_sync"
POWER_EVENT = "compute.tasks.power_event"

# Host agents (queues ``compute.<host>``, ``storage.<host>``, ``network.<host>``).
AGENT_PING = "workers.agent.tasks.ping"
AGENT_REPORT_HOST = "workers.agent.tasks.report_host"
AGENT_SPAWN_INSTANCE = "workers.agent.tasks.spawn_instance"
AGENT_INSTANCE_ACTION = "workers.agent.tasks.instance_action"
AGENT_CONSOLE_LOG = "workers.agent.tasks.console_log"
AGENT_REBUILD_INSTANCE = "workers.agent.tasks.rebuild_instance"  # root disk recreated, same domain
AGENT_SNAPSHOT_INSTANCE = "workers.agent.tasks.snapshot_instance"  # root disk -> a signed image URL

# Host agents, storage role (queue ``storage.<host>``): a ``workers.messages.VolumeRequest`` in,
# a ``VolumeResult`` out.
AGENT_CREATE_VOLUME = "workers.agent.storage.create_volume"  # blank, from image, snapshot or volume
AGENT_DELETE_VOLUME = "workers.agent.storage.delete_volume"  # idempotent: a missing volume is ok
AGENT_EXTEND_VOLUME = "workers.agent.storage.extend_volume"  # the backend's volume, not the guest
AGENT_SNAPSHOT_VOLUME = "workers.agent.storage.snapshot_volume"  # name: the snapshot's; source: the volume
AGENT_UPLOAD_VOLUME = "workers.agent.storage.upload_volume"  # the volume's bytes to a signed image URL

# Host agents, compute role: a ``workers.messages.VolumeAttachment`` in, an ``AttachmentResult`` out.
AGENT_ATTACH_VOLUME = "workers.agent.tasks.attach_volume"
AGENT_DETACH_VOLUME = "workers.agent.tasks.detach_volume"
AGENT_RESIZE_VOLUME = "workers.agent.tasks.resize_volume"  # libvirt's block resize of an attached disk

# Host agents, network role (queue ``network.<host>``): a ``workers.messages.NetworkSpec`` (kwarg
# ``spec``) or ``FloatingIpRequest`` (kwarg ``request``) in, a ``NetworkResult`` out.
AGENT_ENSURE_NETWORK = "workers.agent.network.ensure_network"  # idempotent define/start/update DHCP
AGENT_DELETE_NETWORK = "workers.agent.network.delete_network"  # a missing network is ok
AGENT_SET_FLOATING_IP = "workers.agent.network.set_floating_ip"  # associate=False removes the NAT

# Host agents, compute role: a ``NicSpec`` (kwarg ``nic``, its ``domain`` set) or ``PortFilter`` (kwarg
# ``port_filter``) in, a ``NetworkResult`` out.
AGENT_PLUG_NIC = "workers.agent.network.plug_nic"
AGENT_UNPLUG_NIC = "workers.agent.network.unplug_nic"
AGENT_APPLY_PORT_FILTER = "workers.agent.network.apply_port_filter"  # replaced whole; idempotent
