"""Storage's default policy rules."""

from identity.policy import ADMIN, MEMBER, READER, register_defaults

register_defaults(
    {
        "storage:volume_type:list": "authenticated",
        "storage:volume_type:show": "authenticated",
        "storage:volume_type:create": ADMIN,
        "storage:volume_type:delete": ADMIN,
        "storage:volume:list": READER,
        "storage:volume:show": READER,
        "storage:volume:create": MEMBER,
        "storage:volume:delete": MEMBER,
        "storage:volume:update": MEMBER,
        "storage:volume:extend": MEMBER,
        "storage:volume:upload": MEMBER,
        "storage:volume:attach": MEMBER,
        "storage:volume:detach": MEMBER,
        "storage:volume:create_from_image": MEMBER,
        "storage:volume:force_detach": ADMIN,
        "storage:volume:reset_state": ADMIN,
        "storage:volume:show_host": ADMIN,
        "storage:volume:actions": READER,
        "storage:snapshot:list": READER,
        "storage:snapshot:show": READER,
        "storage:snapshot:create": MEMBER,
        "storage:snapshot:delete": MEMBER,
        "storage:pool:list": ADMIN,
    }
)
