from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def home(request):
    """Each role sees where its work is; the tiles are chosen in the template by role."""
    return render(request, "home.html")
