"""Checkout slots: a stable folder per repository for each conductor at work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from farm.run.checkout_slots import checkout_slot


def test_slots_are_taken_in_order_and_given_back(tmp_path: Path) -> None:
    with checkout_slot(tmp_path, "github.com/acme/shop") as first:
        with checkout_slot(tmp_path, "github.com/acme/shop") as second:
            assert first != second
            assert (first.name, second.name) == ("0", "1")
            assert first.parent == second.parent
        with checkout_slot(tmp_path, "github.com/acme/shop") as again:
            assert again == second  # given back, so taken again
        with checkout_slot(tmp_path, "github.com/acme/other") as other:
            assert other.name == "0" and other.parent != first.parent
    with checkout_slot(tmp_path, "github.com/acme/shop") as later:
        assert later == first


def test_a_slot_held_by_another_process_is_skipped_until_it_dies(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom pathlib import Path\nfrom farm.run.checkout_slots import "
         "checkout_slot\nwith checkout_slot(Path(sys.argv[1]), 'r'):\n    print('held', "
         "flush=True)\n    time.sleep(60)\n", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with checkout_slot(tmp_path, "r") as slot:
            assert slot.name == "1"
    finally:
        holder.kill()
        holder.wait()
    with checkout_slot(tmp_path, "r") as slot:
        assert slot.name == "0"  # the kernel let go of the dead holder's lock
