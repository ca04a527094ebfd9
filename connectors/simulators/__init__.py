"""Device simulators for the demo and the tests: real servers on loopback speaking device protocols."""
