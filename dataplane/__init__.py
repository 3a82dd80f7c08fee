"""The agentgw data plane: the proxy process (`agentgw-proxy`)."""

from dataplane import accel

accel.install()
