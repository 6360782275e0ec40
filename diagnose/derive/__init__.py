"""Pure derivations over recorded readings: no I/O, no psutil, no pynvml."""
