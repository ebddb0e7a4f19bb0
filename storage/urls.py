from django.urls import path

from . import views

urlpatterns = [
    path("volumes/", views.volumes, name="volumes"),
    path("volumes/create/", views.volume_create, name="volume-create"),
    path("volumes/<uuid:pk>/", views.volume_detail, name="volume"),
    path("volumes/<uuid:pk>/row/", views.volume_row, name="volume-row"),
    path("volumes/<uuid:pk>/extend/", views.volume_extend, name="volume-extend"),
    path("volumes/<uuid:pk>/snapshot/", views.volume_snapshot, name="volume-snapshot"),
    path("volumes/<uuid:pk>/clone/", views.volume_clone, name="volume-clone"),
    path("volumes/<uuid:pk>/delete/", views.volume_delete, name="volume-delete"),
    path("volumes/<uuid:pk>/force-detach/", views.volume_force_detach, name="volume-force-detach"),
    path("volumes/<uuid:pk>/upload/", views.volume_upload, name="volume-upload"),
    path("volumes/<uuid:pk>/reset-state/", views.volume_reset_state, name="volume-reset-state"),
    path("snapshots/", views.snapshots, name="snapshots"),
    path("snapshots/<uuid:pk>/row/", views.snapshot_row, name="snapshot-row"),
    path("snapshots/<uuid:pk>/delete/", views.snapshot_delete, name="snapshot-delete"),
    path("snapshots/<uuid:pk>/new-volume/", views.snapshot_new_volume, name="snapshot-new-volume"),
    path("admin/volumes/", views.admin_volumes, name="admin-volumes"),
    path("admin/volume-types/", views.admin_volume_types, name="admin-volume-types"),
    path(
        "admin/volume-types/<uuid:pk>/delete/",
        views.admin_volume_type_delete,
        name="admin-volume-type-delete",
    ),
    path("admin/backends/", views.admin_backends, name="admin-backends"),
]
