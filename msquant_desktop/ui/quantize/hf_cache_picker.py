"""A list of the models already in the local Hugging Face cache, next to a model folder field.

Choosing one puts its snapshot folder into the field (a revision is exact; a typed hub name resolves
to the snapshot `main` points at when the form is checked).  The cache is scanned by the service in a
thread when the picker is created; the list says "scanning…" until then, and what to run when the
cache holds no model.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QComboBox, QLineEdit, QWidget

from msquant_desktop.domain.quantize import human_bytes
from msquant_desktop.services.quantize_service import CacheListing, QuantizeService, download_hint


class HfCachePicker(QComboBox):
    def __init__(self, service: QuantizeService, target: QLineEdit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("hf-cache-picker")
        self._target = target
        self.listing: CacheListing | None = None
        self.addItem("Hugging Face cache: scanning…")
        self.setEnabled(False)
        self.activated.connect(self._on_activated)
        service.sig_hf_cache.connect(self._on_listing)
        if service.hf_cache is not None:
            self._on_listing(service.hf_cache)
        service.scan_hf_cache()  # a fresh look each time a form opens (a download may have finished)

    @Slot(object)
    def _on_listing(self, listing: CacheListing) -> None:
        self.listing = listing
        self.clear()
        models = listing.models
        if listing.problem:
            self.addItem(listing.problem)
        elif not models:
            self.addItem(
                f"Hugging Face cache ({listing.cache_dir}) has no model: {download_hint('ORG/NAME')}"
            )
        else:
            self.addItem(f"From the Hugging Face cache ({len(models)} model revision(s))…")
        self.setItemData(0, listing.cache_dir, Qt.ItemDataRole.ToolTipRole)
        for model in models:
            self.addItem(f"{model.label} · {human_bytes(model.size_on_disk)}", model.path)
            self.setItemData(self.count() - 1, model.path, Qt.ItemDataRole.ToolTipRole)
        self.setEnabled(bool(models))
        self.setCurrentIndex(0)

    def labels(self) -> list[str]:
        return [self.itemText(i) for i in range(self.count())]

    def choose(self, index: int) -> None:
        """Pick the cached model at list position `index` (1 is the first model)."""
        self.setCurrentIndex(index)
        self._on_activated(index)

    @Slot(int)
    def _on_activated(self, index: int) -> None:
        path = self.itemData(index)
        if path:
            self._target.setText(str(path))
