from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=True)
router.register("networks", views.NetworkViewSet, basename="network")
router.register("subnets", views.SubnetViewSet, basename="subnet")
router.register("ports", views.PortViewSet, basename="port")
router.register("floating-ips", views.FloatingIPViewSet, basename="floating-ip")
router.register("security-groups", views.SecurityGroupViewSet, basename="security-group")
router.register("security-group-rules", views.SecurityGroupRuleViewSet, basename="security-group-rule")

urlpatterns = router.urls
