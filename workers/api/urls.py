from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=True)
router.register("operations", views.OperationViewSet, basename="operation")

urlpatterns = router.urls
