# Loads a Vagrantfile with Vagrant's own library (no provider needed) and prints, as JSON, the
# configuration Vagrant would use for each machine. Usage: ruby vagrantfile_probe.rb PROJECT_DIR
require "vagrant"
require "json"

env = Vagrant::Environment.new(cwd: ARGV.fetch(0))
machines = env.machine_names.map do |name|
  vm = env.vagrantfile.machine_config(name, nil, nil)[:config].vm
  vb = vm.get_provider_config(:virtualbox)
  {
    name: name.to_s,
    hostname: vm.hostname,
    box: vm.box,
    box_version: vm.box_version,
    private_networks: vm.networks.select { |type, _| type == :private_network }.map { |_, opts| opts[:ip] },
    netmasks: vm.networks.select { |type, _| type == :private_network }.map { |_, opts| opts[:netmask] },
    provisioners: vm.provisioners.map { |p| p.type.to_s },
    synced_folders: vm.synced_folders.transform_values { |f| f[:disabled] ? "disabled" : f[:hostpath] },
    virtualbox: { name: vb.name, linked_clone: vb.linked_clone,
                  customize: vb.customizations.map { |event, command| [event, command.drop(2)] } },
    providers: vm.instance_variable_get(:@__providers).keys.map(&:to_s),
  }
end
puts JSON.generate(machines)
