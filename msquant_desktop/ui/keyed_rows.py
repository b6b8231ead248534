"""A table model over rows that each carry a stable key: a new list becomes row-level signals.

`set_rows(new)` compares the new list with the shown one by key: rows whose key is gone are removed,
rows with a new key are inserted where they belong, rows whose value changed get `dataChanged`
(insert, remove and change each once per run of neighbouring rows, so a first load is one insert).
Only keys that stay but changed their order, or keys that repeat, reset the model: views keep their
selection and scroll position otherwise.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

Row = TypeVar("Row")
Index = QModelIndex | QPersistentModelIndex


class KeyedRowsModel(QAbstractTableModel, Generic[Row]):
    HEADERS: tuple[str, ...] = ()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[Row] = []
        self._keys: list[Hashable] = []

    # -- for subclasses ------------------------------------------------------------------------------
    def key(self, row: Row) -> Hashable:
        raise NotImplementedError

    def display(self, row: Row, column: int) -> Any:
        raise NotImplementedError

    def extra(self, row: Row, column: int, role: int) -> Any:
        """Roles other than DisplayRole (tooltips, colours, alignment)."""
        return None

    # -- updates -------------------------------------------------------------------------------------
    def row_of(self, key: Hashable) -> int | None:
        try:
            return self._keys.index(key)
        except ValueError:
            return None

    def set_rows(self, rows: Sequence[Row]) -> None:
        new_rows = list(rows)
        new_keys = [self.key(r) for r in new_rows]
        new_set, old_set = set(new_keys), set(self._keys)
        staying_old = [k for k in self._keys if k in new_set]
        staying_new = [k for k in new_keys if k in old_set]
        if len(new_set) != len(new_keys) or staying_old != staying_new:
            self.beginResetModel()  # the shape really changed: rows moved among each other
            self.rows, self._keys = new_rows, new_keys
            self.endResetModel()
            return
        self._remove_gone(new_set)
        self._insert_new(new_rows, new_keys, old_set)
        self._update_changed(new_rows)

    def _insert_new(self, new_rows: list[Row], new_keys: list[Hashable], old: set[Hashable]) -> None:
        at = 0
        while at < len(new_keys):  # the first `at` rows already match new_keys
            if new_keys[at] in old:
                at += 1
                continue
            end = at
            while end + 1 < len(new_keys) and new_keys[end + 1] not in old:
                end += 1
            self.beginInsertRows(QModelIndex(), at, end)
            self.rows[at:at] = new_rows[at : end + 1]
            self._keys[at:at] = new_keys[at : end + 1]
            self.endInsertRows()
            at = end + 1

    def _remove_gone(self, keep: set[Hashable]) -> None:
        at = len(self._keys) - 1
        while at >= 0:  # from the bottom, in runs of neighbouring rows
            if self._keys[at] in keep:
                at -= 1
                continue
            last = at
            while at > 0 and self._keys[at - 1] not in keep:
                at -= 1
            self.beginRemoveRows(QModelIndex(), at, last)
            del self.rows[at : last + 1]
            del self._keys[at : last + 1]
            self.endRemoveRows()
            at -= 1

    def _update_changed(self, new_rows: list[Row]) -> None:
        first: int | None = None
        for at, row in enumerate(new_rows):
            if self.rows[at] != row:
                self.rows[at] = row
                first = at if first is None else first
                continue
            if first is not None:
                self._emit_changed(first, at - 1)
                first = None
        if first is not None:
            self._emit_changed(first, len(new_rows) - 1)

    def _emit_changed(self, first: int, last: int) -> None:
        self.dataChanged.emit(self.index(first, 0), self.index(last, self.columnCount() - 1))

    # -- Qt model interface --------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.display(row, index.column())
        return self.extra(row, index.column(), role)
