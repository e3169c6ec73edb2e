cwlVersion: v1.2
class: CommandLineTool
id: echo
label: echo
doc: Writes its message to a file; the smallest job there is.
baseCommand: echo
inputs:
  message:
    type: string
    inputBinding: {position: 1}
outputs:
  out:
    type: stdout
stdout: message.txt
