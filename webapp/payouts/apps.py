from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "webapp.payouts"
    label = "payouts"
