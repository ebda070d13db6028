from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = 'ecs.core'
    label = 'core'
    default_auto_field = 'django.db.models.AutoField'
