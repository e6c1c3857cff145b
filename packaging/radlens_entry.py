"""The packaged ``radlens`` executable: the same commands as the installed ``radlens``.

With no arguments it is the main job (the viewer on the bundled sample study; a PNG where there
is no display). Two switches exist only for the bundle's smoke test and its budget table:

* ``RADLENS_TIMING=<epoch seconds when the launcher started>`` prints how long the process took
  from then to the main window's first paint;
* ``radlens --bundle-selftest`` imports and exercises the lazily imported libraries (MONAI,
  SciPy, nibabel and the NIfTI/NRRD/MetaImage readers, highdicom, matplotlib, the DICOM
  decoders) so a missing hidden import or data file fails the smoke test instead of a user's
  first click.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time


def _report_first_paint(started: float) -> None:
    """Wrap ``viewer.app.application`` so the first paint of the main window is timed."""
    from PySide6 import QtCore, QtWidgets

    import viewer.app

    make_application = viewer.app.application

    class FirstPaint(QtCore.QObject):
        done = False

        def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:
            if (
                not self.done
                and event.type() == QtCore.QEvent.Type.Paint
                and isinstance(obj, QtWidgets.QWidget)
                and isinstance(obj.window(), QtWidgets.QMainWindow)
            ):
                self.done = True
                print(f"first painted window after {time.time() - started:.2f} s (from launch)", flush=True)
            return False

    def timed_application() -> QtWidgets.QApplication:
        app = make_application()
        if not hasattr(app, "_radlens_first_paint"):
            app._radlens_first_paint = FirstPaint(app)  # type: ignore[attr-defined]  # kept alive with the app
            app.installEventFilter(app._radlens_first_paint)  # type: ignore[attr-defined]
        return app

    viewer.app.application = timed_application


def _selftest() -> int:
    """Exercise every lazily imported library the commands use; prints one line per check."""
    import numpy as np

    def check(name: str, fn: object) -> bool:
        try:
            detail = fn()  # type: ignore[operator]
        except Exception as exc:
            print(f"FAIL {name}: {type(exc).__name__}: {exc}")
            return False
        print(f"ok   {name}{': ' + str(detail) if detail else ''}")
        return True

    def monai_unet() -> str:
        import torch
        from monai.inferers.utils import sliding_window_inference

        from inference.models.architectures import build_model

        net = build_model("unet3d", in_channels=1, out_channels=2).eval()
        with torch.no_grad():
            out = sliding_window_inference(torch.zeros(1, 1, 24, 24, 24), (16, 16, 16), 2, net, mode="gaussian")
        assert isinstance(out, torch.Tensor)
        return f"unet3d + sliding window -> {tuple(out.shape)}"

    def scipy_labels() -> str:
        from scipy import ndimage

        _, n = ndimage.label(np.eye(4, dtype=bool))
        return f"ndimage.label: {n} components"

    def image_files() -> str:
        """The bundle has no SimpleITK: NIfTI/NRRD/MetaImage are read by inference.io.image_file_fallback."""
        import gzip
        import tempfile

        import nibabel

        from inference.io.image_file import read_image_file
        from inference.io.image_file_fallback import use_simpleitk

        if use_simpleitk():
            raise RuntimeError("SimpleITK is in the bundle; packaging/radlens.spec excludes it")
        voxels = np.arange(24, dtype=np.int16).reshape(2, 3, 4)  # (k, j, i)
        with tempfile.TemporaryDirectory() as tmp:
            nibabel.save(nibabel.Nifti1Image(voxels.T, np.eye(4)), os.path.join(tmp, "x.nii.gz"))
            with open(os.path.join(tmp, "x.nrrd"), "wb") as f:
                f.write(
                    b"NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 4 3 2\n"
                    b"space directions: (1,0,0) (0,1,0) (0,0,1)\nendian: little\nencoding: gzip\n"
                    b"space origin: (0,0,0)\n\n"
                )
                f.write(gzip.compress(voxels.astype("<i2").tobytes()))
            with open(os.path.join(tmp, "x.mha"), "wb") as f:
                f.write(
                    b"ObjectType = Image\nNDims = 3\nDimSize = 4 3 2\nElementType = MET_SHORT\n"
                    b"ElementDataFile = LOCAL\n" + voxels.astype("<i2").tobytes()
                )
            for suffix in (".nii.gz", ".nrrd", ".mha"):
                if not np.array_equal(read_image_file(os.path.join(tmp, "x" + suffix)).voxels, voxels):
                    raise RuntimeError(f"{suffix} read back wrong")
        return "NIfTI, NRRD, MetaImage read without SimpleITK"

    def nibabel_io() -> str:
        import nibabel

        nibabel.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)).to_bytes()
        return f"nibabel {nibabel.__version__}"

    def isal_gzip() -> str:
        import gzip
        import tempfile

        from isal import igzip

        from inference.io import nifti_writer
        from inference.volume import Volume

        with tempfile.TemporaryDirectory() as tmp, open(os.path.join(tmp, "probe"), "wb") as fh:
            if type(nifti_writer.gzip_writer(fh)) is not igzip.GzipFile:
                raise RuntimeError("ISA-L's gzip is not the one .nii.gz outputs use")
            voxels = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
            path = nifti_writer.write_nifti(
                Volume(voxels, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3)), os.path.join(tmp, "x.nii.gz")
            )
            if gzip.decompress(path.read_bytes())[352:] != voxels.tobytes():
                raise RuntimeError("the .nii.gz written through ISA-L reads back wrong")
        return "ISA-L gzip for .nii.gz"

    def highdicom_data() -> str:
        import highdicom

        from inference.io import seg_reader

        del seg_reader
        return f"highdicom {highdicom.__version__}"

    def matplotlib_agg() -> str:
        import io

        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(2, 2))
        FigureCanvasAgg(fig)
        fig.add_subplot().plot([0, 1], [0, 1], label="x")
        fig.savefig(io.BytesIO(), format="png")
        return "PNG (Agg)"

    def reportlab_pdf() -> str:
        import io

        import reportlab
        from reportlab.pdfgen.canvas import Canvas

        from inference.batch import pdf_report

        pdf_report.register_fonts()  # the DejaVu TrueType files from matplotlib's data folder
        canvas = Canvas(io.BytesIO())
        canvas.setFont(pdf_report.FONT, 10)
        canvas.drawString(72, 72, "RadLens · ×²")
        canvas.save()
        return f"reportlab {reportlab.Version}, DejaVu Sans"

    def dicom_decoders() -> str:
        from pydicom.pixels.decoders.base import get_decoder
        from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSLossless, RLELossless

        wanted = {
            JPEGBaseline8Bit: {"pylibjpeg", "gdcm"},
            JPEGExtended12Bit: {"pylibjpeg", "gdcm"},
            JPEGLSLossless: {"pylibjpeg", "gdcm", "pyjpegls"},
            JPEG2000Lossless: {"pylibjpeg", "gdcm"},
            RLELossless: {"pylibjpeg"},
        }
        missing = {}
        for uid, plugins in wanted.items():
            absent = plugins - set(get_decoder(uid).available_plugins)
            if absent:
                missing[uid.name] = sorted(absent)
        if missing:
            raise RuntimeError(f"decoders missing: {missing}")
        return "pylibjpeg, gdcm and pyjpegls for JPEG, JPEG-LS, JPEG 2000 and RLE"

    def dicognito_anonymizer() -> str:
        import dicognito
        from dicognito.anonymizer import Anonymizer
        from pydicom.dataset import Dataset, FileMetaDataset

        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.PatientName, ds.PatientID, ds.StudyInstanceUID = "TEST^PATIENT", "ID-1", "1.2.3"
        Anonymizer(seed="radlens-selftest").anonymize(ds)
        if str(ds.PatientName) == "TEST^PATIENT" or ds.StudyInstanceUID == "1.2.3":
            raise RuntimeError("the dataset came back unchanged")
        return f"dicognito {dicognito.__version__}"

    def safetensors_torch() -> str:
        import torch
        from safetensors.torch import load, save

        return f"round trip {load(save({'w': torch.ones(2)}))['w'].tolist()}"

    def submodules() -> str:
        import importlib
        import pkgutil

        import inference
        import viewer

        names = [m.name for pkg in (inference, viewer) for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
        for name in names:
            importlib.import_module(name)
        return f"{len(names)} inference/viewer modules import"

    checks = {
        "inference + viewer modules": submodules,
        "MONAI": monai_unet,
        "SciPy": scipy_labels,
        "image files": image_files,
        "nibabel": nibabel_io,
        "gzip": isal_gzip,
        "highdicom": highdicom_data,
        "matplotlib": matplotlib_agg,
        "pdf": reportlab_pdf,
        "DICOM decoders": dicom_decoders,
        "dicognito": dicognito_anonymizer,
        "safetensors": safetensors_torch,
    }
    failed = [name for name, fn in checks.items() if not check(name, fn)]
    return 1 if failed else 0


def main() -> int:
    multiprocessing.freeze_support()  # a frozen executable re-entered as a worker process
    started = os.environ.pop("RADLENS_TIMING", "")
    if started:
        _report_first_paint(float(started))
    if sys.argv[1:] == ["--bundle-selftest"]:
        return _selftest()
    from inference.cli.main import main as radlens_main

    return radlens_main()


if __name__ == "__main__":
    raise SystemExit(main())
