from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=True)
router.register("volume-types", views.VolumeTypeViewSet, basename="volume-type")
router.register("volumes", views.VolumeViewSet, basename="volume")
router.register("snapshots", views.SnapshotViewSet, basename="snapshot")
router.register("backends", views.StoragePoolViewSet, basename="storage-backend")

urlpatterns = router.urls
