version 1.0

task gpu_step {
    meta {
        description: "Writes a greeting"
        outputs: {
            out: "The greeting"
        }
    }
    parameter_meta {
        mode: {
            description: "How to greet",
            choices: ["plain", "loud"]
        }
        gpu: "Use the GPU"
        gpu_queue_arn: "GPU queue"
        cpu_queue_arn: "CPU queue"
        docker_image: "Image (pinned)"
    }
    input {
        String mode = "plain"
        Boolean gpu = true
        String gpu_queue_arn = ""
        String cpu_queue_arn = ""
        String docker_image = "batchpipes/genomics:000000000000"
    }
    command <<<
        set -euo pipefail
        mapfile -t args < ~{write_lines([mode])}
        echo "hello ${args[0]}" > out.txt
    >>>
    output {
        File out = "out.txt"
    }
    runtime {
        docker: docker_image
        cpu: 1
        memory: "1 GiB"
        disks: "local-disk 10 SSD"
        maxRetries: 0
        gpuCount: if gpu then 1 else 0
        queueArn: if gpu then gpu_queue_arn else cpu_queue_arn
        ulimits: [{"name": "nofile", "softLimit": "4096", "hardLimit": "4096"}]  # !UnknownRuntimeKey
    }
}

workflow gpu_flow {
    meta {
        description: "Greets on the GPU queue"
        outputs: {
            greeting: "The greeting"
        }
    }
    parameter_meta {
        style: {
            description: "Greeting style",
            choices: ["plain", "loud"]
        }
        gpu_queue_arn: "GPU queue"
        cpu_queue_arn: "CPU queue"
    }
    input {
        String style = "plain"
        String gpu_queue_arn = ""
        String cpu_queue_arn = ""
    }
    call gpu_step { input: mode = style, gpu_queue_arn = gpu_queue_arn, cpu_queue_arn = cpu_queue_arn }
    output {
        File greeting = gpu_step.out
    }
}
