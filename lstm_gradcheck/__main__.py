import sys

from lstm_gradcheck.cli import main

sys.exit(main())
