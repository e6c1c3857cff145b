"""What of the patient's identity reaches the outputs of a batch run.

Three policies, one per command-line choice:

* ``default``: no patient name, ID or birth date anywhere (the project's rule for logs and
  default outputs); study/series UIDs, dates and descriptions are kept so results can be
  matched to their source.
* ``anonymize``: DICOM PS3.15 Basic Application Level Confidentiality Profile through
  dicognito (the maintained implementation), with a pseudonym for the patient; UIDs are
  remapped consistently, run after run, with a key kept in the output folder; dates and
  descriptions are left out of every table and report.
* ``identify``: the source's identity is kept (for a reading room that needs the name on the
  report); chosen explicitly with ``--identify``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from inference.io.stacks import Stack

KEY_FILE = "anonymize.key"

#: Attributes removed from copies of source headers under the default policy (Type 2 ones emptied).
_IDENTITY_EMPTIED = ("PatientName", "PatientID", "PatientBirthDate")
_IDENTITY_REMOVED = (
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientMotherBirthName",
    "IssuerOfPatientID",
)


class IdentityPolicy(StrEnum):
    DEFAULT = "default"
    ANONYMIZE = "anonymize"
    IDENTIFY = "identify"


def load_or_create_key(out_dir: Path) -> bytes:
    """The secret that keeps pseudonyms and remapped UIDs stable when a run is resumed."""
    path = out_dir / KEY_FILE
    if path.exists():
        return path.read_bytes()
    key = secrets.token_hex(32).encode()
    tmp = path.with_name(f".{KEY_FILE}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return key


@dataclass
class Identity:
    """Applies one policy to source headers, table rows and file names."""

    policy: IdentityPolicy = IdentityPolicy.DEFAULT
    key: bytes = b""

    def __post_init__(self) -> None:
        self._anonymizer: Any = None
        if self.policy == IdentityPolicy.ANONYMIZE:
            if not self.key:
                raise ValueError("anonymization needs a key")
            from dicognito.anonymizer import Anonymizer

            self._anonymizer = Anonymizer(seed=self.key.decode("ascii", "replace"))
        self._uids: dict[str, str] = {}

    @property
    def anonymize(self) -> bool:
        return self.policy == IdentityPolicy.ANONYMIZE

    def pseudonym(self, patient_id: str, patient_name: str = "") -> str:
        digest = hmac.new(self.key, f"{patient_id}\0{patient_name}".encode(), hashlib.sha256).hexdigest()
        return "ANON-" + digest[:10].upper()

    def token(self, text: str) -> str:
        """A short stable name for a stack folder: reveals nothing under anonymization."""
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()[:12]

    def uid(self, uid: str) -> str:
        """The UID as it appears in outputs: remapped exactly as in the de-identified DICOM."""
        if not self.anonymize or not uid:
            return uid
        if uid not in self._uids:
            from pydicom.dataset import Dataset, FileMetaDataset

            ds = Dataset()
            ds.file_meta = FileMetaDataset()
            ds.SeriesInstanceUID = uid
            self._anonymizer.anonymize(ds)
            self._uids[uid] = str(ds.SeriesInstanceUID)
        return self._uids[uid]

    def dataset(self, ds: Any) -> Any:
        """A source header as the outputs may carry it (used to build DICOM SEG), changed in place:
        callers pass headers they read for the purpose (a copy cost a third of the SEG's time)."""
        if self.policy == IdentityPolicy.IDENTIFY:
            return ds
        out = ds
        if self.policy == IdentityPolicy.DEFAULT:
            for kw in _IDENTITY_EMPTIED:
                if kw in out:
                    setattr(out, kw, "")
            for kw in _IDENTITY_REMOVED:
                if kw in out:
                    delattr(out, kw)
            return out
        pseudonym = self.pseudonym(str(ds.get("PatientID", "")), str(ds.get("PatientName", "")))
        if not hasattr(out, "file_meta"):
            from pydicom.dataset import FileMetaDataset

            out.file_meta = FileMetaDataset()
        self._anonymizer.anonymize(out)
        out.PatientName = pseudonym
        out.PatientID = pseudonym
        for kw in ("StudyDescription", "SeriesDescription", "ProtocolName", "ImageComments"):
            if kw in out:
                delattr(out, kw)
        return out

    def study_fields(self, stack: Stack) -> dict[str, str]:
        """Identifiers of a stack for tables and report headers, under this policy."""
        h = stack.headers[0] if stack.headers else None
        if self.anonymize:
            return {
                "patient": self.pseudonym(h.patient_id, h.patient_name) if h else "",
                "study_uid": self.uid(stack.study_uid),
                "series_uid": self.uid(stack.series_uid),
            }
        fields = {
            "study_uid": stack.study_uid,
            "series_uid": stack.series_uid,
            "study_date": h.study_date if h else "",
            "study_description": h.study_description if h else "",
            "series_description": stack.description,
        }
        if self.policy == IdentityPolicy.IDENTIFY and h is not None:
            fields = {"patient_name": h.patient_name, "patient_id": h.patient_id, **fields}
        return fields
