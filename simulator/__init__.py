"""A local simulator of the analytics API, for tests, the demo and the benchmark."""

from simulator.server import Fault, SimConfig, Simulator, SimulatorServer

__all__ = ["Fault", "SimConfig", "Simulator", "SimulatorServer"]
