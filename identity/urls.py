from django.urls import path

from . import views

urlpatterns = [
    path("keypairs/", views.keypairs, name="keypairs"),
    path("keypairs/<uuid:pk>/delete/", views.keypair_delete, name="keypair-delete"),
    path("admin/projects/", views.admin_projects, name="admin-projects"),
    path("admin/projects/<uuid:pk>/delete/", views.admin_project_delete, name="admin-project-delete"),
    path("admin/users/", views.admin_users, name="admin-users"),
    path("admin/users/<uuid:pk>/delete/", views.admin_user_delete, name="admin-user-delete"),
    path("admin/role-assignments/", views.admin_roles, name="admin-roles"),
    path("admin/role-assignments/<uuid:pk>/revoke/", views.admin_role_revoke, name="admin-role-revoke"),
]
