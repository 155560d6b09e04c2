"""`python -m lwd.cli ...`: the same as `lwd ...`; torchrun and accelerate launch start the command this way."""

import sys

from lwd.cli import main

sys.exit(main())
