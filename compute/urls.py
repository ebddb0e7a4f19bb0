from django.urls import path

from . import views, views_images, views_instances, views_volumes

urlpatterns = [
    path("images/", views_images.images, name="images"),
    path("images/upload/", views_images.image_upload, name="image-upload"),
    path("images/<uuid:pk>/download/", views_images.image_download, name="image-download"),
    path("images/<uuid:pk>/delete/", views_images.image_delete, name="image-delete"),
    path("images/<uuid:pk>/membership/", views_images.image_member_status, name="image-member-status"),
    path("instances/", views_instances.instances, name="instances"),
    path("instances/launch/", views_instances.launch, name="instance-launch"),
    path("instances/<uuid:pk>/", views_instances.instance_detail, name="instance"),
    path("instances/<uuid:pk>/row/", views_instances.instance_row, name="instance-row"),
    path("instances/<uuid:pk>/console/", views_instances.instance_console, name="instance-console"),
    path("instances/<uuid:pk>/volumes/", views_volumes.instance_volumes, name="instance-volumes"),
    path(
        "instances/<uuid:pk>/volumes/attach/",
        views_volumes.instance_volume_attach,
        name="instance-volume-attach",
    ),
    path("volumes/<uuid:pk>/attach/", views_volumes.volume_attach, name="volume-attach"),
    path("volumes/<uuid:pk>/detach/", views_volumes.volume_detach, name="volume-detach"),
    path("instances/<uuid:pk>/<str:action>/", views_instances.instance_action, name="instance-action"),
    path("admin/instances/", views_instances.admin_instances, name="admin-instances"),
    path("admin/drift/", views_instances.admin_drift, name="admin-drift"),
    path("admin/scheduler/", views_instances.admin_explain, name="admin-explain"),
    path("admin/flavors/", views.admin_flavors, name="admin-flavors"),
    path("admin/flavors/<uuid:pk>/delete/", views.admin_flavor_delete, name="admin-flavor-delete"),
    path("admin/hosts/", views.admin_hosts, name="admin-hosts"),
    path("admin/hosts/<uuid:pk>/disable/", views.admin_host_disable, name="admin-host-disable"),
    path("admin/hosts/<uuid:pk>/enable/", views.admin_host_enable, name="admin-host-enable"),
]
