"""What the benchmark collectors record about the machine (imported by their inline Python)."""
import platform


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, else platform's guess."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
