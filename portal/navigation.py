"""The dashboard's navigation: each app contributes entries, shown when policy allows them."""

from dataclasses import dataclass


@dataclass(frozen=True)
class NavItem:
    section: str  # "Project" or "Admin" or "Identity"
    label: str
    url_name: str
    action: str  # policy action that must hold to show the entry
    icon: str = ""


MENU: list[NavItem] = [
    NavItem("Project", "Overview", "overview", "authenticated", "speedometer2"),
    NavItem("Project", "Instances", "compute:instances", "compute:instance:list", "pc-display"),
    NavItem("Project", "Images", "compute:images", "compute:image:list", "image"),
    NavItem("Project", "Volumes", "storage:volumes", "storage:volume:list", "hdd"),
    NavItem("Project", "Snapshots", "storage:snapshots", "storage:snapshot:list", "camera"),
    NavItem("Project", "Networks", "networking:networks", "networking:network:list", "diagram-3"),
    NavItem("Project", "Floating IPs", "networking:floating-ips", "networking:floating_ip:list", "globe"),
    NavItem(
        "Project", "Security groups", "networking:security-groups", "networking:security_group:list", "shield"
    ),
    NavItem("Project", "Key pairs", "identity:keypairs", "identity:keypair:list", "key"),
    NavItem("Project", "Operations", "operations", "workers:operation:list", "activity"),
    NavItem("Admin", "Projects", "identity:admin-projects", "identity:project:create", "folder"),
    NavItem("Admin", "Users", "identity:admin-users", "identity:user:create", "people"),
    NavItem(
        "Admin", "Role assignments", "identity:admin-roles", "identity:role_assignment:create", "shield-lock"
    ),
    NavItem("Admin", "Flavors", "compute:admin-flavors", "compute:flavor:create", "cpu"),
    NavItem("Admin", "Hypervisors", "compute:admin-hosts", "compute:host:list", "hdd-rack"),
    NavItem(
        "Admin",
        "All instances",
        "compute:admin-instances",
        "compute:instance:list_all",
        "pc-display-horizontal",
    ),
    NavItem("Admin", "All volumes", "storage:admin-volumes", "storage:volume:force_detach", "hdd-stack"),
    NavItem("Admin", "Volume types", "storage:admin-volume-types", "storage:volume_type:create", "tags"),
    NavItem("Admin", "Storage backends", "storage:admin-backends", "storage:pool:list", "database"),
    NavItem(
        "Admin", "All networks", "networking:admin-networks", "networking:network:show_host", "diagram-2"
    ),
    NavItem(
        "Admin",
        "External networks",
        "networking:admin-external-networks",
        "networking:network:create_external",
        "globe2",
    ),
    NavItem(
        "Admin", "Network hosts", "networking:admin-network-hosts", "networking:network:show_host", "router"
    ),
    NavItem("Admin", "Scheduler", "compute:admin-explain", "compute:host:explain", "signpost-split"),
    NavItem("Admin", "Drift", "compute:admin-drift", "compute:instance:drift", "exclamation-diamond"),
]


def register(item: NavItem) -> None:
    """Add an app's entry (compute, storage and networking call this from their AppConfig.ready)."""
    if item not in MENU:
        MENU.append(item)
