"""Build, remove or inspect the compiled request path (dataplane/accel.py): `make accel`."""

import sys

from dataplane import accel

if __name__ == "__main__":
    sys.exit(accel.main(sys.argv[1:]))
