from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "curation.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self):
        # The API token cache drops entries when tokens, users or their groups change.
        from curation.accounts import authentication  # noqa: F401
