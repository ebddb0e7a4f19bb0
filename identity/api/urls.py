from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash=True)
router.register("projects", views.ProjectViewSet, basename="project")
router.register("users", views.UserViewSet, basename="user")
router.register("roles", views.RoleViewSet, basename="role")
router.register("role-assignments", views.RoleAssignmentViewSet, basename="role-assignment")
router.register("keypairs", views.KeyPairViewSet, basename="keypair")
router.register("tokens", views.ApiTokenViewSet, basename="token")
router.register("actions", views.ResourceActionViewSet, basename="resource-action")

urlpatterns = router.urls
