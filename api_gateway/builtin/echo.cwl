cwlVersion: v1.2
class: ExpressionTool
id: echo
label: Echo
doc: >-
  Returns its inputs as its outputs, each output named as its input (as the OGC test
  suites expect): a string, a number, an array of integers, a bounding box, an object,
  a binary value (base64, or by reference) and a file by reference. Built in for every
  user and immutable.
$namespaces:
  s: https://schema.org/
s:softwareVersion: 1.0.0
s:keywords: [echo, test]
# A parameter reference, not JavaScript: no Node.js needed. The outputs are the inputs.
# The object input comes before the bounding box: the Part 1 suite gives its object value
# ({"value": "teststring"}) to the first input whose schema is an object.
expression: $(inputs)
inputs:
  string_input: {type: string, label: A string}
  double_input: {type: "double?", label: A number}
  array_input: {type: "int[]?", label: An array of integers}
  object_input: {type: "Any?", label: An object}
  bbox_input: {type: "Any?", label: A bounding box}
  binary_input: {type: "Any?", label: "A binary value, inline (base64) or by reference"}
  file_input: {type: "File?", label: A file by reference}
outputs:
  string_input: "Any?"
  double_input: "Any?"
  array_input: "Any?"
  object_input: "Any?"
  bbox_input: "Any?"
  binary_input: "Any?"
  file_input: "File?"
