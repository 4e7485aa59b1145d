"""Start the shortener's stack, inject faults and observe its alerts."""
