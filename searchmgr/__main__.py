import sys

from searchmgr.cli import main

sys.exit(main())
