"""``python -m app check``: validate settings and schema before serving (gunicorn runs it)."""

import sys

from app.migrate import main

sys.exit(main())
