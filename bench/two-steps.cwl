cwlVersion: v1.2
$graph:
  - class: Workflow
    id: two-steps
    label: Two steps
    doc: Writes its message to a file, then upper-cases it; two Slurm-sized steps.
    inputs:
      message: string
    outputs:
      out:
        type: File
        outputSource: shout/out
    steps:
      say:
        run: "#say"
        in: {message: message}
        out: [out]
      shout:
        run: "#shout"
        in: {text: say/out}
        out: [out]
  - class: CommandLineTool
    id: say
    baseCommand: echo
    inputs:
      message: {type: string, inputBinding: {position: 1}}
    outputs:
      out: stdout
    stdout: said.txt
  - class: CommandLineTool
    id: shout
    baseCommand: [tr, a-z, A-Z]
    stdin: $(inputs.text.path)
    inputs:
      text: File
    outputs:
      out: stdout
    stdout: shouted.txt
