cwlVersion: v1.2
$namespaces:
  s: https://schema.org/
s:softwareVersion: 1.0.0
s:keywords: [echo, test]
$graph:
  - class: Workflow
    id: echo
    label: Echo
    doc: >-
      Returns its inputs as its outputs: a string, a number, an array of integers, a
      bounding box, an object, a binary value (base64, or by reference) and a file by
      reference. Built in for every user and immutable; the OGC test suites exercise it.
    inputs:
      string_input: {type: string, label: A string}
      double_input: {type: "double?", label: A number}
      array_input: {type: "int[]?", label: An array of integers}
      bbox_input: {type: "Any?", label: A bounding box}
      object_input: {type: "Any?", label: An object}
      binary_input: {type: "Any?", label: "A binary value, inline (base64) or by reference"}
      file_input: {type: "File?", label: A file by reference}
    outputs:
      string_output: {type: "Any?", outputSource: echo_values/string_input}
      double_output: {type: "Any?", outputSource: echo_values/double_input}
      array_output: {type: "Any?", outputSource: echo_values/array_input}
      bbox_output: {type: "Any?", outputSource: echo_values/bbox_input}
      object_output: {type: "Any?", outputSource: echo_values/object_input}
      binary_output: {type: "Any?", outputSource: echo_values/binary_input}
      file_output: {type: "File?", outputSource: echo_values/file_input}
    steps:
      echo_values:
        run: "#echo-values"
        in:
          string_input: string_input
          double_input: double_input
          array_input: array_input
          bbox_input: bbox_input
          object_input: object_input
          binary_input: binary_input
          file_input: file_input
        out: [string_input, double_input, array_input, bbox_input, object_input,
              binary_input, file_input]
  - class: ExpressionTool
    id: echo-values
    # A parameter reference, not JavaScript: no Node.js needed. The outputs are the inputs.
    expression: $(inputs)
    inputs:
      string_input: string
      double_input: "double?"
      array_input: "int[]?"
      bbox_input: "Any?"
      object_input: "Any?"
      binary_input: "Any?"
      file_input: "File?"
    outputs:
      string_input: "Any?"
      double_input: "Any?"
      array_input: "Any?"
      bbox_input: "Any?"
      object_input: "Any?"
      binary_input: "Any?"
      file_input: "File?"
