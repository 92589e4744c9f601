from curation.accounts.roles import user_roles


def roles(request):
    return {"user_roles": user_roles(getattr(request, "user", None))}
