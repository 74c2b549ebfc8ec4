import sys

from loyalty_monitor.cli import main

sys.exit(main())
