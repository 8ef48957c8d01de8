"""DICOMweb STOW-RS: multipart/related DICOM instances in, the STOW answer out."""
