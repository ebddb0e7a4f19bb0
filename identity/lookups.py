"""``json_list__has_item="x"``: a JSON list column holds the string ``x``, on PostgreSQL and SQLite.

Django's own JSON lookups do not answer this portably: ``contains`` is not supported on SQLite, and
``has_key`` means an object's key there. Tags (an image's, an instance's) are JSON lists filtered
by item, so one lookup serves both: PostgreSQL's jsonb containment (``@>``, which its GIN indexes
can serve) and SQLite's ``json_each``.
"""

from __future__ import annotations

import json

from django.db.models import JSONField, Lookup


@JSONField.register_lookup
class HasItem(Lookup):
    lookup_name = "has_item"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        if not isinstance(self.rhs, str):
            raise TypeError("has_item compares a JSON list's items with a string")
        if connection.vendor == "postgresql":
            return f"{lhs} @> %s::jsonb", [*lhs_params, json.dumps([self.rhs])]
        return f"EXISTS (SELECT 1 FROM json_each({lhs}) WHERE json_each.value = %s)", [*lhs_params, self.rhs]
