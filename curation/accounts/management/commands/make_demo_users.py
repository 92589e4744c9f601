from django.core.management.base import BaseCommand

from curation.accounts.roles import ROLES
from curation.accounts.services import user_create_with_role


class Command(BaseCommand):
    help = "Create one user per role (username = role) and print their logins."

    def add_arguments(self, parser):
        parser.add_argument("--password", default="demo-pass-2025", help="password for every demo user")

    def handle(self, *args, password: str, **options):
        for role in ROLES:
            user_create_with_role(username=role, password=password, role=role)
            self.stdout.write(f"  {role:<13} login: {role:<13} password: {password}")
