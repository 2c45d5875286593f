"""The shell: the CLI, the engine that wires every part from one ``Settings``, the automation
extension, the demo and the benchmark. It imports every layer; no layer imports it."""
