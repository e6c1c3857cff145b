"""Reading and writing images: DICOM through pydicom, other formats through SimpleITK."""
