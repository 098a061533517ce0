import sys

from predictors.cli import main

sys.exit(main())
