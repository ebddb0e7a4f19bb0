"""API pagination (a module of its own: DRF resolves it while importing its generic views)."""

from rest_framework import pagination


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """``?limit=&offset=`` with ``count``, ``next``, ``previous``, ``results``; at most 1000 a page."""

    default_limit = 50
    max_limit = 1000
