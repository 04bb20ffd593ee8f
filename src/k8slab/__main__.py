import sys

from k8slab.cli import main

sys.exit(main())
