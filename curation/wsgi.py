import os

from django.core.wsgi import get_wsgi_application

# A web process answers many small searches at once, one per thread: FAISS and torch each
# starting an OpenMP team per search makes concurrent requests fight over the cores (one search
# measured 86 ms instead of 4 ms). One thread per search unless the environment says otherwise;
# set before anything imports numpy, faiss or torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "curation.settings")
application = get_wsgi_application()
