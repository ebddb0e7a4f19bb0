from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=True)
router.register("flavors", views.FlavorViewSet, basename="flavor")
router.register("hosts", views.HostViewSet, basename="host")

urlpatterns = router.urls
