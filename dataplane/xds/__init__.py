"""The data plane's xDS half: `client.XdsClient` follows the controller's delta ADS stream."""
