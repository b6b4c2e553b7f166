"""TF Serving's JSON tensor formats (its REST API's `json_tensor`): request JSON to arrays, arrays to response JSON.

- Row format, `{"instances": [...]}`: one element per batch row, an object `{input: value}` (a plain value or
  list when the signature has one input); answered `{"predictions": [...]}`, one object per row (a plain value
  when the signature has one output).
- Columnar format, `{"inputs": {input: value}}` (a plain value when the signature has one input); answered
  `{"outputs": {output: value}}` (the plain value for one output).
Values are typed by the signature's dtypes: strings as JSON strings or `{"b64": ...}`, integers only for integer
inputs, numbers for floats (not beyond float32's range for DT_FLOAT). Output strings are JSON strings, or
`{"b64": ...}` when the output's name ends in `_bytes`; float32 outputs are written as TF Serving writes them (6
significant digits when they read back as the same float32, else 9). Inputs with a SignatureDef default may be
left out (this server's addition: TF Serving's JSON parser asks for every input). The input names, and after the
conversion their dtypes and shapes, are checked by `Servable` (`check_input_names`, `predict`): the same checks a
gRPC request gets.
"""

from __future__ import annotations

import base64
import binascii
import json

import grpc
import numpy as np
import tensorflow as tf

from serving.servable import RequestError, Servable

ROW, COLUMNAR = "instances", "inputs"


def _invalid(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


def parse_body(body: bytes) -> dict:
    """The request body as a JSON object.

    Args:
        body: the HTTP body.

    Returns:
        The decoded object.

    Raises:
        RequestError: INVALID_ARGUMENT for an empty body, bad JSON or a document that is not an object.
    """
    if not body.strip():
        raise _invalid("JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _invalid(f"JSON Parse error: {error}") from None
    if not isinstance(document, dict):
        raise _invalid(f"JSON Value: {_text(document)} Is not object")
    return document


def _text(value) -> str:
    return json.dumps(value)[:200]


def signature_name(document: dict) -> str:
    """The request's `signature_name`.

    Args:
        document: the request's JSON object.

    Returns:
        The name, "" when absent.

    Raises:
        RequestError: INVALID_ARGUMENT for a name that is not a string.
    """
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise _invalid(
            f"JSON Value: {_text(document)} not formatted correctly. " "'signature_name' key must be a string value."
        )
    return name


def _json_type(value) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def _scalar(value, dtype: tf.DType):
    """One JSON leaf as a value of `dtype`, with TF Serving's rules (see the module docstring)."""
    type_error = _invalid(
        f"JSON Value: {_text(value)} Type: {_json_type(value)} is not of expected type: " f"{dtype.name}"
    )
    if dtype == tf.string:
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, dict) and list(value) == ["b64"] and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except binascii.Error:
                raise _invalid(f"JSON Value: {_text(value)} Unable to base64 decode") from None
        raise type_error
    if dtype == tf.bool:
        if isinstance(value, bool):
            return value
        raise type_error
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise type_error
    if dtype.is_integer:
        if not isinstance(value, int) or not dtype.min <= value <= dtype.max:
            raise type_error
        return value
    if dtype.is_floating:
        if np.isfinite(value) and abs(value) > dtype.max:
            raise _invalid(f"Cannot convert JSON value: {_text(value)} to {dtype.name} without loss of precision.")
        return value
    raise RequestError(grpc.StatusCode.UNIMPLEMENTED, f"Conversion of JSON Value: {_text(value)} to type: {dtype.name}")


def _fill(value, level: int, shape: list[int], dtype: tf.DType, flat: list) -> None:
    if not isinstance(value, list):
        if level != len(shape):
            raise _invalid(
                f"JSON Value: {_text(value)} found at incorrect level: {level + 1} in the JSON DOM. "
                f"Expected at level: {len(shape)}"
            )
        flat.append(_scalar(value, dtype))
        return
    if level >= len(shape):
        raise _invalid(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
    if len(value) != shape[level]:
        raise _invalid(
            f"Encountered list at unexpected size: {len(value)} at level: {level} " f"expected size: {shape[level]}"
        )
    for element in value:
        _fill(element, level + 1, shape, dtype, flat)


def to_array(value, dtype: tf.DType) -> np.ndarray:
    """A dense JSON value (scalar or nested lists) as an array of `dtype` (strings as bytes objects).

    Args:
        value: the decoded JSON; its shape is read along the first elements and every list must match it.
        dtype: the signature input's dtype.

    Returns:
        The array, of the value's shape.

    Raises:
        RequestError: INVALID_ARGUMENT for a ragged value or a leaf of the wrong type or range; UNIMPLEMENTED for
            a dtype JSON cannot carry.
    """
    shape, probe = [], value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    flat: list = []
    _fill(value, 0, shape, dtype, flat)
    numpy_dtype = object if dtype == tf.string else dtype.as_numpy_dtype
    array = np.empty(len(flat), dtype=numpy_dtype)
    array[:] = flat
    return array.reshape(shape)


def _is_object(value) -> bool:
    """A JSON object that names inputs (a `{"b64": ...}` value is a string, not an object)."""
    return isinstance(value, dict) and not (list(value) == ["b64"] and isinstance(value["b64"], str))


def _rows(instances: list, servable: Servable, signature: str) -> dict[str, np.ndarray]:
    if not instances:
        raise _invalid("No values in 'instances' array")
    specs = servable.input_specs(signature)
    by_name = _is_object(instances[0])
    if not by_name and len(specs) > 1:
        raise _invalid(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    names = set(instances[0]) if by_name else set(specs)
    specs = servable.check_input_names(signature, names)
    columns: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for row, instance in enumerate(instances):
        if _is_object(instance) != by_name:
            raise _invalid(
                f"Expecting {'object' if by_name else 'value/list'} but got "
                f"{'list' if by_name else 'object'} at item {row} of input list"
            )
        named = instance if by_name else {next(iter(specs)): instance}
        if set(named) != names:
            raise _invalid(
                f"Failed to process element: {row} of 'instances' list. JSON object: {_text(instance)} "
                f"keys must be equal to: {','.join(sorted(names))}"
            )
        for name, value in named.items():
            array = to_array(value, specs[name].dtype)
            if row and array.shape != columns[name][0].shape:
                raise _invalid(
                    f"Failed to process element: {row} key: {name} of 'instances' list. Error: "
                    f"Expecting shape {list(columns[name][0].shape)} but got: {list(array.shape)}"
                )
            columns[name].append(array)
    return {name: np.stack(arrays) for name, arrays in columns.items()}


def _columns(inputs, servable: Servable, signature: str) -> dict[str, np.ndarray]:
    specs = servable.input_specs(signature)
    if not _is_object(inputs):
        if len(specs) > 1:
            raise _invalid(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        inputs = {next(iter(specs)): inputs}
    specs = servable.check_input_names(signature, inputs)
    return {name: to_array(value, specs[name].dtype) for name, value in inputs.items()}


def request_inputs(document: dict, servable: Servable, signature: str) -> tuple[dict[str, np.ndarray], str]:
    """The arrays of a predict request in either format, named and typed as `signature` of `servable` asks
    (the names checked by `Servable.check_input_names`, as a gRPC request's).

    Args:
        document: the request's JSON object.
        servable: the served version.
        signature: the signature key.

    Returns:
        (input name -> array, batch first; ROW or COLUMNAR, the format to answer in).

    Raises:
        RequestError: INVALID_ARGUMENT for a malformed request, FAILED_PRECONDITION for an unknown signature.
    """
    if ROW in document and COLUMNAR in document:
        raise _invalid(
            f"JSON Value: {_text(document)} Not formatted correctly expecting only one of 'inputs' or "
            "'instances' keys to exist"
        )
    if ROW in document:
        if not isinstance(document[ROW], list):
            raise _invalid(f"JSON Value: {_text(document)} Excepting 'instances' to be an list/array")
        return _rows(document[ROW], servable, signature), ROW
    if COLUMNAR in document:
        return _columns(document[COLUMNAR], servable, signature), COLUMNAR
    raise _invalid("Missing 'inputs' or 'instances' key")


def _json_values(name: str, array: np.ndarray):
    """An output array as nested JSON-ready lists (see the module docstring for strings and floats)."""
    if array.dtype == object:
        if name.endswith("_bytes"):
            convert = np.frompyfunc(lambda raw: {"b64": base64.b64encode(raw).decode("ascii")}, 1, 1)
        else:
            convert = np.frompyfunc(lambda raw: raw.decode("utf-8", "replace"), 1, 1)
        return np.asarray(convert(array), dtype=object).tolist()
    if array.dtype == np.float32:
        return np.asarray(_FLOAT32_AS_TF_SERVING(array), dtype=object).tolist()
    return array.tolist()


def _float32_decimal(value: np.float32) -> float:
    """TF Serving's decimal of a float32: 6 significant digits if they read back as the same float32, else 9, as
    the Python float that `json` writes with those digits."""
    six = float(f"{value:g}")
    return six if np.float32(six) == value else float(f"{value:.9g}")


_FLOAT32_AS_TF_SERVING = np.frompyfunc(_float32_decimal, 1, 1)


def response_json(outputs: dict[str, np.ndarray], form: str) -> dict:
    """The JSON answer to a predict request.

    Args:
        outputs: output name -> array.
        form: ROW or COLUMNAR, the request's format.

    Returns:
        {"predictions": ...} (ROW) or {"outputs": ...} (COLUMNAR).

    Raises:
        RequestError: INVALID_ARGUMENT for row-format outputs without a batch dimension, or with different batch
            sizes.
    """
    values = {name: _json_values(name, array) for name, array in sorted(outputs.items())}
    if form == COLUMNAR:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    batch = set()
    for name, array in outputs.items():
        if array.ndim == 0:
            raise _invalid(f"Tensor name: {name} has no shape information ")
        batch.add(array.shape[0])
    if len(batch) > 1:
        raise _invalid(f"outputs have inconsistent batch sizes {sorted(batch)}; ask in the columnar format ('inputs')")
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    return {"predictions": [{name: rows[row] for name, rows in values.items()} for row in range(batch.pop())]}
