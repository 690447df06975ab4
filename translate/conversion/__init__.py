"""Folder conversion with a loaded translator: ``Translator.translate_folder`` and every engine of
``translate convert`` (see :mod:`translate.convert` for the whole job).

Guarantees, on local disk and in object storage alike:
- inputs are never written to: OUTPUT equal to or inside INPUT is refused unless asked for
  (``in_place_ok``), and even then no output may replace an input file;
- existing outputs are kept (and skipped) unless ``overwrite``: re-running after an interruption
  converts only what is missing, and writes nothing when everything exists;
- every output is written atomically (temp file + rename; one complete PUT in object storage):
  no half-written images, ever;
- a bad input file is reported by location and reason, listed in ``OUTPUT/failed.jsonl``, and
  the rest are converted.

This package sits below the translator: it only needs a translator-like object (``prepare``,
``translate_tensor``, ``finish``, ``pick_direction``, ``tile_pixels``). Its modules:

- :mod:`.plan`: inputs, outputs, safety rules, summary, ``failed.jsonl`` (no OpenCV, no torch);
- :mod:`.stream`: read, decode, translate, encode, write a list of planned items;
- :mod:`.local`: the local engine, :func:`translate.conversion.local.convert`.

The package imports none of them itself, so that planning alone stays light.
"""
