from django.apps import AppConfig


class MappingConfig(AppConfig):
    name = "webapp.mapping"
    label = "mapping"
