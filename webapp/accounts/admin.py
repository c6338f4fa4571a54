from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from webapp.accounts.models import User


@admin.register(User)
class RoadMeshUserAdmin(UserAdmin):
    list_display = ("username", "role", "wallet_address", "is_staff", "date_joined")
    list_filter = ("role", "is_staff", "is_active")
    fieldsets = (*(UserAdmin.fieldsets or ()), ("RoadMesh", {"fields": ("role", "wallet_address")}))
