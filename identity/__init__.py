"""Identity: users, projects, roles, role assignments, quotas, key pairs, API tokens, policy."""
