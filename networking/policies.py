"""Networking's default policy rules."""

from identity.policy import ADMIN, MEMBER, READER, register_defaults

register_defaults(
    {
        "networking:network:list": READER,
        "networking:network:show": READER,
        "networking:network:create": MEMBER,
        "networking:network:update": MEMBER,
        "networking:network:delete": MEMBER,
        "networking:network:create_shared": ADMIN,
        "networking:network:create_external": ADMIN,
        "networking:network:show_host": ADMIN,
        "networking:subnet:list": READER,
        "networking:subnet:show": READER,
        "networking:subnet:create": MEMBER,
        "networking:subnet:delete": MEMBER,
        "networking:port:list": READER,
        "networking:port:show": READER,
        "networking:port:create": MEMBER,
        "networking:port:update": MEMBER,
        "networking:port:delete": MEMBER,
        "networking:floating_ip:list": READER,
        "networking:floating_ip:show": READER,
        "networking:floating_ip:create": MEMBER,
        "networking:floating_ip:delete": MEMBER,
        "networking:floating_ip:associate": MEMBER,
        "networking:floating_ip:disassociate": MEMBER,
        "networking:security_group:list": READER,
        "networking:security_group:show": READER,
        "networking:security_group:create": MEMBER,
        "networking:security_group:delete": MEMBER,
        "networking:security_group_rule:list": READER,
        "networking:security_group_rule:show": READER,
        "networking:security_group_rule:create": MEMBER,
        "networking:security_group_rule:delete": MEMBER,
    }
)
