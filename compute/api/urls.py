from rest_framework.routers import SimpleRouter

from . import images, instances, views

router = SimpleRouter(trailing_slash=True)
router.register("flavors", views.FlavorViewSet, basename="flavor")
router.register("hosts", views.HostViewSet, basename="host")
router.register("images", images.ImageViewSet, basename="image")
router.register("instances", instances.InstanceViewSet, basename="instance")
router.register("scheduler/explain", instances.SchedulerExplainViewSet, basename="scheduler-explain")

urlpatterns = router.urls + images.urlpatterns
