"""Small graphs for the partition tests."""
from __future__ import annotations


def lattice_edges(rows: int, cols: int) -> list[tuple[int, int]]:
    """Edges of a rows × cols 4-neighbour lattice, nodes numbered row by row."""
    e = []
    for r in range(rows):
        for c in range(cols):
            a = r * cols + c
            if c + 1 < cols:
                e.append((a, a + 1))
            if r + 1 < rows:
                e.append((a, a + cols))
    return e
