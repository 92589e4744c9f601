"""Role groups and user creation."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from curation.accounts.roles import ADMIN, ROLES


@transaction.atomic
def roles_ensure() -> dict[str, Group]:
    """Create the four role groups if missing (idempotent)."""
    return {name: Group.objects.get_or_create(name=name)[0] for name in ROLES}


@transaction.atomic
def user_create_with_role(*, username: str, password: str, role: str, email: str = ""):
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    groups = roles_ensure()
    User = get_user_model()
    user, _ = User.objects.get_or_create(username=username, defaults={"email": email})
    user.set_password(password)
    # Admins also get Django's admin site, which is where reinstating workers and the raw tables live.
    user.is_staff = role == ADMIN
    user.is_superuser = role == ADMIN
    user.save()
    user.groups.add(groups[role])
    return user
